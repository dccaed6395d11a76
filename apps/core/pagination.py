from rest_framework.pagination import CursorPagination as _CursorPagination


class CursorPagination(_CursorPagination):
    """Stable cursor pagination, newest first; `limit` bounded to 1..200."""

    ordering = "-created_at"
    page_size_query_param = "limit"
    max_page_size = 200
