from django.urls import path

from app.cats import api, views

app_name = "cats"

urlpatterns = [
    path("", views.CatList.as_view(), name="list"),
    path("cats/new/", views.CatCreate.as_view(), name="create"),
    path("cats/<int:pk>/", views.CatDetail.as_view(), name="detail"),
    path("cats/<int:pk>/edit/", views.CatEdit.as_view(), name="edit"),
    path("api/cats/", api.cat_list, name="api-list"),
    path("api/cats/<int:pk>/", api.cat_detail, name="api-detail"),
]
