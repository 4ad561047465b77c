from django.db import migrations, models

SEED = {"widget": 100, "gadget": 50}


def seed_stock(apps, schema_editor):
    Stock = apps.get_model("inventory", "Stock")
    for sku, quantity in SEED.items():
        Stock.objects.get_or_create(sku=sku, defaults={"quantity": quantity})


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Stock",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("sku", models.CharField(max_length=64, unique=True)),
                ("quantity", models.PositiveIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(seed_stock, migrations.RunPython.noop),
    ]
