"""Print where the demo is served and how to log in (used by `make run`)."""

import os
import sys
from pathlib import Path

port = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PORT", "8000")
base = f"http://127.0.0.1:{port}"
credentials = Path(__file__).resolve().parent.parent / "var" / "demo-credentials.txt"
values = {}
if credentials.exists():
    for line in credentials.read_text().splitlines():
        key, _, value = line.partition("=")
        values[key] = value

print(
    f"""
  Agent Registry (embedded mode: SQLite, in-process cache, demo data)

  API docs      {base}/api/docs/
  Admin         {base}/admin/   user: {values.get("ADMIN_USERNAME", "admin")}  password: {values.get("ADMIN_PASSWORD", "(see var/demo-credentials.txt)")}
  Portal        {base}/portal/
                customer: {values.get("CUSTOMER_USERNAME", "demo-customer")}  password: {values.get("CUSTOMER_PASSWORD", "(see var/demo-credentials.txt)")}
                provider: {values.get("PROVIDER_USERNAME", "demo-provider")}  password: {values.get("PROVIDER_PASSWORD", "(see var/demo-credentials.txt)")}
  Catalog       curl {base}/api/v1/catalog/
  Operator API  curl -H "Authorization: Token {values.get("OPERATOR_TOKEN", "<token>")}" {base}/api/v1/agents/
  Demo API key  {values.get("DEMO_API_KEY", "(see var/demo-credentials.txt)")}
  Call the demo agent (pay as you go: $0.002 a call, 5 calls/s, 1,000 calls/month):
    curl -X POST {base}/api/v1/agents/echo-demo/invoke -H "X-API-Key: {values.get("DEMO_API_KEY", "<key>")}" -d '{{"input": "hello"}}'
  OpenAI SDK    OpenAI(base_url="{base}/v1", api_key="<demo API key>"), model="echo-demo"
  Health        {base}/health/ready

  More tokens:  .venv/bin/python manage.py issue_token NAME --staff
  Credentials are kept in var/demo-credentials.txt; load them into a shell with
    . var/demo.env     # DEMO_API_KEY, OPERATOR_TOKEN, ADMIN_PASSWORD, …
  Stop with Ctrl+C.
""",
    flush=True,
)
