from django.db import migrations, models

SEED = {"widget": 1999, "gadget": 4950}


def seed_prices(apps, schema_editor):
    Price = apps.get_model("pricing", "Price")
    for sku, cents in SEED.items():
        Price.objects.get_or_create(sku=sku, defaults={"unit_price_cents": cents})


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Price",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("sku", models.CharField(max_length=64, unique=True)),
                ("unit_price_cents", models.PositiveIntegerField()),
                ("currency", models.CharField(default="EUR", max_length=3)),
            ],
        ),
        migrations.RunPython(seed_prices, migrations.RunPython.noop),
    ]
