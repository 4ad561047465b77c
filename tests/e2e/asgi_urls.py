from django.urls import include, path

from project.urls import urlpatterns as demo_urlpatterns

urlpatterns = [*demo_urlpatterns, path("async/", include("tests.async_views"))]
