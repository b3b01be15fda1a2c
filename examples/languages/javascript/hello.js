console.log("Hello, world!")
