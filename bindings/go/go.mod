module github.com/libbottle/libbottle/bindings/go

go 1.22
