// MPI's world communicator as a normnet::Comm (distributed.h). Only mpi_comm.cpp includes mpi.h;
// the library normnet_mpi (built when CMake finds MPI) holds it, and only the command line and
// the distributed tests link it.
//
// Requires: start_mpi() at most once per process, on the thread that makes every later call
// (MPI_THREAD_FUNNELED: OpenMP threads never call MPI).
// Ensures: sum_floats adds each element in double in rank order on exactly one rank (the owner
// of its chunk) and sends the result to all, so every rank gets the same bytes whatever the
// transport does; a rank that dies ends the job through mpirun (MPI_ERRORS_ARE_FATAL, the
// default), and abort() ends it through MPI_Abort.
#pragma once
#include <memory>

#include "normnet/distributed.h"

namespace normnet {

// MPI_Init_thread and the world; the Comm's destructor calls MPI_Finalize.
std::unique_ptr<Comm> start_mpi();

}  // namespace normnet
