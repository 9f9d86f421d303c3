"""The plumbing around the networks: everything that touches the outside world.

Dataset files and downloads (`datasets`), the one atomic file writer (`files`), model and
checkpoint files (`archive`, `modelfile`), the original notebook's parameters
(`notebook`), photos of digits (`photos`), plots (`plots`) and the process-wide malloc
setting of the command-line tools (`allocator`). The math lives in `nets/` and
`autodiff/` and never imports from here.
"""
