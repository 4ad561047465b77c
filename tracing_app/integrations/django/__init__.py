"""Django: a SERVER span per request (``middleware``)."""
