"""Checkout changes the ops scenes deploy, as a `git pull` of the next version brings them.

Test migrations follow the app's newest (read from the checkout, so a new migration in the app
never leaves them behind) and sort after every real one.
"""

from tests.harness import REPO

NEWEST_MIGRATION = max(path.stem for path in (REPO / "app/cats/migrations").glob("0*.py"))
# Backward compatible (nullable), as tests/unit/test_migrations.py requires.
EXPAND_NAME = "9001_cat_nickname"
EXPAND_MIGRATION = f"""from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("cats", "{NEWEST_MIGRATION}")]
    operations = [
        migrations.AddField("cat", "nickname", models.CharField(max_length=50, null=True)),
    ]
"""
FAILING_NAME = "9002_fails"
FAILING_MIGRATION = f"""from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("cats", "{EXPAND_NAME}")]
    operations = [migrations.RunSQL("SELECT 1 / 0")]
"""
NICKNAME_FIELD = "    nickname = models.CharField(max_length=50, null=True)\n"
