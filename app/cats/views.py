from django.contrib.messages.views import SuccessMessageMixin
from django.views.generic import CreateView, DetailView, ListView, UpdateView

from app.cats.forms import CatForm
from app.cats.models import Cat


class CatList(ListView):
    model = Cat
    paginate_by = 24


class CatDetail(DetailView):
    model = Cat


class CatCreate(SuccessMessageMixin, CreateView):
    model = Cat
    form_class = CatForm
    success_message = "%(name)s was added."


class CatEdit(SuccessMessageMixin, UpdateView):
    model = Cat
    form_class = CatForm
    success_message = "%(name)s was saved."
