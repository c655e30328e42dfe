"""The compose stack's alert webhook: Alertmanager posts here, each alert becomes one log line.

alerts/alertmanager.yml routes every alert to ``http://alert-receiver:8080/alerts``; replace this
service with your own receiver (a chat bridge, an incident tool) or add Slack/PagerDuty there.
``docker compose logs -f alert-receiver`` shows what would have paged.
"""

from __future__ import annotations

import argparse
import logging

from aiohttp import web

log = logging.getLogger("alert-receiver")


async def alerts(request: web.Request) -> web.Response:
    """Alertmanager's webhook JSON: ``{"status", "alerts": [{"status", "labels", ...}]}``."""
    payload = await request.json()
    for alert in payload.get("alerts", []):
        labels = alert.get("labels", {})
        annotations = alert.get("annotations", {})
        log.warning(
            "%s %s %s: %s",
            alert.get("status", "?").upper(),
            labels.get("severity", "-"),
            labels.get("alertname", "?"),
            annotations.get("summary") or annotations.get("description") or labels,
        )
    return web.json_response({"received": len(payload.get("alerts", []))})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def app() -> web.Application:
    application = web.Application()
    application.router.add_post("/alerts", alerts)
    application.router.add_get("/healthz", healthz)
    return application


def main() -> None:
    parser = argparse.ArgumentParser(description="log the alerts Alertmanager posts")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    web.run_app(app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
