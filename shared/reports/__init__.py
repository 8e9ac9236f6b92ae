"""The read side: a report request validated, events chosen from the tables (or straight from export
files), turned into views (events, sessions, messages, exposure) and rendered as CSV or JSON, safe
for spreadsheets and terminals; the HTTP semantics of `report_http` and the ReportAccess log."""
