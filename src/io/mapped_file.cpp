#include "quantbench/io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "quantbench/core/error.h"

namespace qb::io {

std::shared_ptr<const MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    fail(errno == ENOENT ? ErrorKind::kNotFound : ErrorKind::kInvalidInput, "{}: cannot open: {}", path,
         std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(ErrorKind::kInvalidInput, "{}: not a regular file", path);
  }
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->size_bytes_ = static_cast<size_t>(st.st_size);
  if (file->size_bytes_ > 0) {
    // MAP_PRIVATE + PROT_WRITE: a stray in-place op on a zero-copy tensor copies the page instead
    // of faulting; the file itself is never modified.
    void* addr = ::mmap(nullptr, file->size_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      fail(ErrorKind::kInvalidInput, "{}: mmap failed: {}", path, std::strerror(err));
    }
    file->data_ = static_cast<uint8_t*>(addr);
  }
  ::close(fd);
  return file;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, size_bytes_);
}

}  // namespace qb::io
