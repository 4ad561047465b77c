from django.urls import path

from . import views

urlpatterns = [
    path("products/<str:sku>/price/", views.product_price, name="product-price"),
]
