# Aliases of the README's commands.
.PHONY: book book-smoke test
book:
	python -m detpretrain book --profile mini
book-smoke:
	python -m detpretrain book --profile smoke
test:
	pytest
