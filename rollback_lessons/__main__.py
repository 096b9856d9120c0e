from .cli import run

if __name__ == "__main__":  # (imported by name, as a --registry, it runs nothing)
    run()
