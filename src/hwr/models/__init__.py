"""Plain `nn.Module` networks: `(input_shape, num_classes, **options)`, no Lightning inside."""
