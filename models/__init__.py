"""What the playground knows about models: the catalogue (presets, discovery, hosted
providers), what fits this machine (one memory budget), and the loaded models
(manager). The engine runs them; this package decides which and how."""
