from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # CONCURRENTLY: the running release keeps writing while the index builds (seconds for a
    # million cats); PostgreSQL refuses it inside a transaction, hence atomic = False.
    atomic = False

    dependencies = [("cats", "0001_initial")]

    operations = [
        AddIndexConcurrently(
            "cat", models.Index(fields=["-created_at", "-id"], name="cat_newest_first")
        ),
    ]
