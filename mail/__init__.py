"""Email content marketers own: the sandboxed Jinja2 renderer, the template lint, links with UTM and unsubscribe."""
