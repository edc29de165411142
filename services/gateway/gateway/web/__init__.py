"""The gateway's web pages for people on phones (API.md v1.1 "Web pages"): Jinja2 templates,
one per page on a shared layout, our own CSS and a little progressive JavaScript, every asset
served by the gateway itself (no CDN: the pages must work inside mainland networks and in
tests). ``pages.WebRoutes`` is the route mixin; ``render`` the template environment."""
