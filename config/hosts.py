"""What a host name in DJANGO_ALLOWED_HOSTS may look like, for Django's settings and for
`./ops init`, which writes it (it runs without Django installed: this module imports nothing)."""

import re

HOST_PATTERN = re.compile(r"(\*|\.?[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])")
