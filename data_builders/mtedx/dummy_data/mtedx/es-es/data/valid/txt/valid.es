buenos días
