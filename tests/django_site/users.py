"""The project's ``USER_LOADER``: a principal's user id is a Django user's primary key."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from sessionstore import Principal


def load_user(principal: Principal) -> Any:
    """The user the principal speaks for, or None (a deleted account)."""
    return get_user_model().objects.filter(pk=principal.user_id).first()
