module equiguard.local/pause

go 1.24
