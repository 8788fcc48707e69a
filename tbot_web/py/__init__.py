"""Flask backend of the dashboard; `portal_web.create_app` builds the app and registers every blueprint."""
