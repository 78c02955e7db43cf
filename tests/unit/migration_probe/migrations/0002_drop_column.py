from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("migration_probe", "0001_initial")]
    operations = [migrations.RemoveField("probe", "doomed")]
