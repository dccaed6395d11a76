from django.utils.dateparse import parse_datetime
from rest_framework import exceptions
from rest_framework.pagination import CursorPagination as _CursorPagination

from apps.core.errors import invalid_field


class CursorPagination(_CursorPagination):
    """Stable cursor pagination, newest first; `limit` bounded to 1..200.

    A bad `limit` or a tampered `cursor` is a 400 naming the parameter (DRF
    answers 404 for a cursor it cannot decode, and a forged position would reach
    the query)."""

    ordering = "-created_at"
    page_size_query_param = "limit"
    max_page_size = 200

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= self.max_page_size):
            raise invalid_field("limit", f"must be an integer from 1 to {self.max_page_size}")
        return int(raw)

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
            # Every ordering here starts with a timestamp.
            if cursor is not None and cursor.position is not None and parse_datetime(cursor.position) is None:
                raise ValueError(cursor.position)
        except (exceptions.NotFound, ValueError) as exc:
            raise invalid_field("cursor", "invalid cursor") from exc
        return cursor
