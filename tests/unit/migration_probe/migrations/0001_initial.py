from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            "Probe",
            [
                ("id", models.BigAutoField(primary_key=True)),
                ("old_name", models.CharField(max_length=10)),
                ("doomed", models.CharField(max_length=10)),
            ],
        ),
    ]
