"""Access to audit data over HTTP: who the caller is, whether they hold the role, and the
ReportAccess row every request leaves (principal), and the guard every endpoint serves through
(guard). Reports, scope and backfill endpoints all use it; it knows none of them."""
