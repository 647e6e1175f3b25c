hola amigos
una prueba
sin video