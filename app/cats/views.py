from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.messages.views import SuccessMessageMixin
from django.urls import reverse_lazy
from django.views.generic import CreateView, DetailView, ListView, UpdateView

from app.cats.forms import CatForm
from app.cats.models import Cat


class SignedInOnly(LoginRequiredMixin):
    """Adding and changing cats (uploads included) is for signed-in users; reading is public.
    The app has no login page of its own: the admin's, which returns to `next` afterwards."""

    login_url = reverse_lazy("admin:login")


class CatList(ListView):
    model = Cat
    paginate_by = 24


class CatDetail(DetailView):
    model = Cat


class CatCreate(SignedInOnly, SuccessMessageMixin, CreateView):
    model = Cat
    form_class = CatForm
    success_message = "%(name)s was added."


class CatEdit(SignedInOnly, SuccessMessageMixin, UpdateView):
    model = Cat
    form_class = CatForm
    success_message = "%(name)s was saved."
