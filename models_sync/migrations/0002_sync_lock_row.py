from django.db import migrations


def create_lock_row(apps, schema_editor):
    apps.get_model("models_sync", "SyncLock").objects.get_or_create(name="openrouter-sync")


class Migration(migrations.Migration):
    dependencies = [("models_sync", "0001_initial")]

    operations = [migrations.RunPython(create_lock_row, migrations.RunPython.noop)]
