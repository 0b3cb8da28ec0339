"""Built-in unlearning methods; every module here is imported by the method registry."""
