module github.com/libbottle/libbottle/bindings/go/bottle

go 1.22
