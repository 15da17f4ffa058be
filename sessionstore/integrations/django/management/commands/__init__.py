"""``manage.py sessionstore``."""
