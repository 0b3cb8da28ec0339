"""Paper 000's figures (layers, epochs) measured on the Dave task; narrative in templates beside the code."""
