from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("migration_probe", "0002_drop_column")]
    operations = [migrations.RenameField("probe", "old_name", "new_name")]
