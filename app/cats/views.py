from django.conf import settings
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.messages.views import SuccessMessageMixin
from django.http import Http404
from django.urls import reverse_lazy
from django.views.generic import CreateView, DetailView, TemplateView, UpdateView

from app.cats import pagination, photos
from app.cats.forms import CatForm
from app.cats.models import Cat
from config.storage import StorageFull


class SignedInOnly(LoginRequiredMixin):
    """Adding and changing cats (uploads included) is for signed-in users; reading is public.
    The app has no login page of its own: the admin's, which returns to `next` afterwards."""

    login_url = reverse_lazy("admin:login")


class PhotoForm:
    """The form again, with a status that says what went wrong on the server's side: 503 and
    Retry-After when no photo check could run (capacity; app.cats.photos), 507 when the media
    volume is full. The user keeps what they typed either way."""

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.has_error("photo", code=photos.BUSY):
            response.status_code = 503
            response["Retry-After"] = str(settings.PHOTO_CHECK_WAIT_SECONDS)
        return response

    def form_valid(self, form):
        try:
            return super().form_valid(form)
        except StorageFull:
            form.add_error(
                None,
                "The photo could not be stored: the server's storage is full. Nothing was "
                "saved; please try again later.",
            )
            response = super().form_invalid(form)
            response.status_code = 507
            return response


class CatList(TemplateView):
    """Newest first, 24 a page, with Newer and Older links by cursor (app.cats.pagination):
    no page count, since counting a million cats costs more than showing 24."""

    template_name = "cats/cat_list.html"
    page_size = 24

    def get_context_data(self, **kwargs):
        after, before = self.request.GET.get("after", ""), self.request.GET.get("before", "")
        if (after and before) or any(
            cursor and pagination.parse_cursor(cursor) is None for cursor in (after, before)
        ):
            raise Http404("no such page")
        page = pagination.page(
            Cat.objects.all(), self.page_size, older_than=after, newer_than=before
        )
        return super().get_context_data(cat_list=page.cats, page=page, **kwargs)


class CatDetail(DetailView):
    model = Cat


class CatCreate(SignedInOnly, PhotoForm, SuccessMessageMixin, CreateView):
    model = Cat
    form_class = CatForm
    success_message = "%(name)s was added."


class CatEdit(SignedInOnly, PhotoForm, SuccessMessageMixin, UpdateView):
    model = Cat
    form_class = CatForm
    success_message = "%(name)s was saved."
