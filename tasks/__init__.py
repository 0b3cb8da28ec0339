"""Built-in tasks; every module here is imported by the task registry."""
