pytest_plugins = ["tracing_app.testing"]
