"""The CRI side: image records, the image index, the ImageService and its gRPC server."""
