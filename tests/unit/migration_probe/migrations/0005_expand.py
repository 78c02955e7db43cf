from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("migration_probe", "0004_not_null_without_default")]
    operations = [
        migrations.AddField("probe", "nullable", models.CharField(max_length=10, null=True)),
        migrations.AddField("probe", "with_db_default", models.IntegerField(db_default=0)),
    ]
