/*
 * The kernel floor of the fleet benchmark: the same canned answers as bench/floor-server.ts and
 * bench/floor-raw-server.ts, from one C thread on epoll (heartbeat: 200 with empty id lists and the
 * capabilities header; dequeue: held for the asked time, at most 30 s, then 204). Its CPU is what
 * the kernel costs for the fleet's requests (the sockets' reads and writes on loopback, epoll) plus
 * next to nothing of its own: what no server on this machine can go below, however it is written.
 *
 * A measuring stick, not a server: it reads what the simulated fleet sends (a Content-Length body,
 * keep-alive, requests one at a time), parses no JSON, and checks nothing. Holds expire in the order
 * they were taken, which is their deadlines' order while every dequeue asks the same time (the
 * simulated fleet asks 30 s). Prints `listening <port>`. bench/fleet.ts compiles it with cc.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 65536
#define BUF_MAX 65536
#define MAX_HOLD_MS 30000

static const char HEARTBEAT[] =
    "HTTP/1.1 200 OK\r\nx-executor-capabilities: long-poll, log-append\r\n"
    "content-type: application/json\r\ncontent-length: 31\r\nconnection: keep-alive\r\n\r\n"
    "{\"knownIds\":[],\"cancelIds\":[]}\n";
static const char NO_CONTENT[] =
    "HTTP/1.1 204 No Content\r\nx-executor-capabilities: long-poll, log-append\r\n"
    "content-length: 0\r\nconnection: keep-alive\r\n\r\n";

struct conn {
  char *buf;
  size_t len;
  unsigned gen; /* bumped when the descriptor closes, so a stale hold is known */
};
struct hold {
  int fd;
  unsigned gen;
  long long due;
};

static struct conn conns[MAX_FDS];
static struct hold *holds;
static size_t holds_cap, holds_head, holds_tail; /* a ring: head is the earliest */

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void push_hold(int fd, long long due) {
  if (holds_tail - holds_head == holds_cap) {
    size_t cap = holds_cap ? holds_cap * 2 : 1024;
    struct hold *next = malloc(cap * sizeof *next);
    for (size_t i = holds_head; i < holds_tail; i++) next[i - holds_head] = holds[i % holds_cap];
    holds_tail -= holds_head;
    holds_head = 0;
    free(holds);
    holds = next;
    holds_cap = cap;
  }
  holds[holds_tail % holds_cap] = (struct hold){fd, conns[fd].gen, due};
  holds_tail++;
}

static void drop(int ep, int fd) {
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
  free(conns[fd].buf);
  conns[fd].buf = NULL;
  conns[fd].len = 0;
  conns[fd].gen++;
}

/* A header's value as a number, or -1 (head is NUL-terminated, its lines end in \r\n). */
static long header_number(const char *head, const char *name) {
  size_t n = strlen(name);
  for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
    if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') return strtol(p + 3 + n, NULL, 10);
  }
  return -1;
}

/* Answers every whole request in the connection's buffer; 0 when the connection must go. */
static int serve(int fd) {
  struct conn *c = &conns[fd];
  for (;;) {
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end) return c->len < BUF_MAX;
    *end = '\0';
    long length = header_number(c->buf, "content-length");
    size_t whole = (size_t)(end - c->buf) + 4 + (size_t)(length > 0 ? length : 0);
    if (whole > BUF_MAX) return 0;
    if (c->len < whole) {
      *end = '\r';
      return 1;
    }
    char *target = strchr(c->buf, ' ');
    char *target_end = target ? strchr(target + 1, ' ') : NULL;
    int dequeue = target_end && target_end - target > 8 && memcmp(target_end - 8, "/dequeue", 8) == 0;
    if (dequeue) {
      long ms = header_number(c->buf, "x-executor-long-poll-ms");
      push_hold(fd, now_ms() + (ms < 0 ? 0 : ms > MAX_HOLD_MS ? MAX_HOLD_MS : ms));
    } else if (write(fd, HEARTBEAT, sizeof HEARTBEAT - 1) < 0) {
      return 0;
    }
    memmove(c->buf, c->buf + whole, c->len - whole);
    c->len -= whole;
  }
}

int main(void) {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 4096) < 0) {
    perror("listen");
    return 1;
  }
  socklen_t alen = sizeof addr;
  getsockname(lfd, (struct sockaddr *)&addr, &alen);
  printf("listening %d\n", ntohs(addr.sin_port));
  fflush(stdout);

  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  struct epoll_event events[256];
  for (;;) {
    long long now = now_ms();
    while (holds_head < holds_tail && holds[holds_head % holds_cap].due <= now) {
      struct hold h = holds[holds_head % holds_cap];
      holds_head++;
      if (conns[h.fd].buf && conns[h.fd].gen == h.gen && write(h.fd, NO_CONTENT, sizeof NO_CONTENT - 1) < 0)
        drop(ep, h.fd);
    }
    int wait = holds_head < holds_tail ? (int)(holds[holds_head % holds_cap].due - now) : -1;
    int n = epoll_wait(ep, events, 256, wait);
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        for (int cfd; (cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0;) {
          if (cfd >= MAX_FDS) {
            close(cfd);
            continue;
          }
          conns[cfd].buf = malloc(BUF_MAX);
          conns[cfd].len = 0;
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
          epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
        }
        continue;
      }
      struct conn *c = &conns[fd];
      ssize_t got = read(fd, c->buf + c->len, BUF_MAX - c->len);
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
        drop(ep, fd);
        continue;
      }
      if (got > 0) c->len += (size_t)got;
      if (!serve(fd)) drop(ep, fd);
    }
  }
}
