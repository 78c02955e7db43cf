from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("migration_probe", "0003_rename_column")]
    operations = [
        migrations.AddField(
            "probe", "required", models.IntegerField(default=0), preserve_default=False
        ),
    ]
