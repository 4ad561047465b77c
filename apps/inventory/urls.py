from django.urls import path

from . import views

urlpatterns = [
    path("stock/<str:sku>/", views.stock_level, name="stock-level"),
]
