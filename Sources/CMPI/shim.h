// Open MPI's handles (MPI_COMM_WORLD, MPI_BYTE, ...) are macros over global
// structs, which Swift cannot import. These prefixed accessors hand them over.
// This module has no stable API of its own: only PSMPI uses it.
#ifndef PSTRAIN_CMPI_SHIM_H
#define PSTRAIN_CMPI_SHIM_H
#include <mpi.h>

static inline MPI_Comm pst_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype pst_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype pst_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype pst_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Op pst_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op pst_mpi_max(void) { return MPI_MAX; }
static inline MPI_Request pst_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Errhandler pst_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline int pst_mpi_any_source(void) { return MPI_ANY_SOURCE; }
static inline int pst_mpi_any_tag(void) { return MPI_ANY_TAG; }
static inline int pst_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
#endif
