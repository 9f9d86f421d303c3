"""Networks, data, training and everything around them, as plain functions of parameter pytrees."""
