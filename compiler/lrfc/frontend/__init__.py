"""Model frontend: load a Keras model, flatten it into one graph, catalogue its layers."""
