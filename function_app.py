"""The Functions app: registers one Blueprint per function folder and nothing else."""

import azure.functions as func

from advance_backfills import bp as advance_backfills_bp
from backfills_http import bp as backfills_http_bp
from deliver_alerts import bp as deliver_alerts_bp
from enrich_trace import bp as enrich_trace_bp
from fetch_audit import bp as fetch_audit_bp
from health_http import bp as health_http_bp
from report_http import bp as report_http_bp
from resolve_subjects import bp as resolve_subjects_bp
from scope_http import bp as scope_http_bp
from watch_poison import bp as watch_poison_bp

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(fetch_audit_bp)
app.register_functions(enrich_trace_bp)
app.register_functions(report_http_bp)
app.register_functions(health_http_bp)
app.register_functions(deliver_alerts_bp)
app.register_functions(watch_poison_bp)
app.register_functions(resolve_subjects_bp)
app.register_functions(scope_http_bp)
app.register_functions(advance_backfills_bp)
app.register_functions(backfills_http_bp)
