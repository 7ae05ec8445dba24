from django.contrib.auth.management import create_permissions
from django.db import migrations

SCHEDULER_PERMISSIONS = [
    ("worklist", "view_workitem"),
    ("worklist", "add_workitem"),
    ("worklist", "change_workitem"),
    ("worklist", "delete_workitem"),
    ("worklist", "change_workitem_state"),
]


def create_scheduler_group(apps, schema_editor):
    # Permissions are normally created after all migrations; create them now so the group can hold them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="scheduler")
    for app_label, codename in SCHEDULER_PERMISSIONS:
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def remove_scheduler_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="scheduler").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("worklist", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_scheduler_group, remove_scheduler_group)]
