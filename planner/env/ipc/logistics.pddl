; Logistics (IPC-2000, typed version): trucks carry packages between places of one city,
; airplanes carry them between the airports of different cities.
(define (domain logistics)
  (:requirements :strips :typing)
  (:types truck airplane - vehicle
          package vehicle - physobj
          airport location - place
          city place physobj - object)
  (:predicates (in-city ?p - place ?c - city)
               (at ?o - physobj ?p - place)
               (in ?pkg - package ?v - vehicle))

  (:action load-truck
    :parameters (?pkg - package ?t - truck ?p - place)
    :precondition (and (at ?t ?p) (at ?pkg ?p))
    :effect (and (not (at ?pkg ?p)) (in ?pkg ?t)))

  (:action load-airplane
    :parameters (?pkg - package ?a - airplane ?p - place)
    :precondition (and (at ?pkg ?p) (at ?a ?p))
    :effect (and (not (at ?pkg ?p)) (in ?pkg ?a)))

  (:action unload-truck
    :parameters (?pkg - package ?t - truck ?p - place)
    :precondition (and (at ?t ?p) (in ?pkg ?t))
    :effect (and (not (in ?pkg ?t)) (at ?pkg ?p)))

  (:action unload-airplane
    :parameters (?pkg - package ?a - airplane ?p - place)
    :precondition (and (in ?pkg ?a) (at ?a ?p))
    :effect (and (not (in ?pkg ?a)) (at ?pkg ?p)))

  (:action drive-truck
    :parameters (?t - truck ?from - place ?to - place ?c - city)
    :precondition (and (at ?t ?from) (in-city ?from ?c) (in-city ?to ?c))
    :effect (and (not (at ?t ?from)) (at ?t ?to)))

  (:action fly-airplane
    :parameters (?a - airplane ?from - airport ?to - airport)
    :precondition (at ?a ?from)
    :effect (and (not (at ?a ?from)) (at ?a ?to))))
