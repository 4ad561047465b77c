from django.urls import path

from . import views

urlpatterns = [
    path("orders/", views.orders, name="orders"),
    path("orders/<int:pk>/", views.order_detail, name="order-detail"),
    path("orders/<int:pk>/quote", views.order_quote, name="order-quote"),
    path("orders/<int:pk>/events/", views.order_events, name="order-events"),
]
