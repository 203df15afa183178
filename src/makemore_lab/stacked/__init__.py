"""The stacked engine: N same-shaped jobs trained as one network with a leading job dimension."""
