"""Avatar models, the animation library, and which animation each reply plays."""
