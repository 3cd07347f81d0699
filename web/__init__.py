"""The web pages, served by ``ledger-api`` beside the REST API: the consumer's returns portal (``/``) and the
public verify page (``/verify``).

Invariants:
- pages call the domain packages (``ledger_service.returns``, ``.verification``, ``.access``) in-process, never
  the REST API over HTTP; errors are mapped to statuses and sentences by the API's one mapping
  (:func:`api.problems.problem_for`), then shown in the page's language (:mod:`web.i18n`);
- every page is server-rendered HTML that works without JavaScript (plain links and forms); htmx, served from
  our own ``/static/`` route, only refreshes parts of a page;
- pages are not in the OpenAPI document (``include_in_schema=False``), so the request gate treats them as
  public routes: a form body is counted against the JSON limit and reaches the route unread.
"""
